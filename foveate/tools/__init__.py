"""foveate.tools"""
