"""faceme"""
