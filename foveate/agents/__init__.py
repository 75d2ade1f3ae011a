"""foveate.agents"""
