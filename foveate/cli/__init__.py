"""foveate.cli"""
