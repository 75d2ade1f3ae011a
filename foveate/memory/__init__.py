"""foveate.memory"""
