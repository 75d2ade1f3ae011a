"""foveate.graphs"""
