"""foveate.conformal"""
