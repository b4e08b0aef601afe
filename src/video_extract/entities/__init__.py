"""Entities and relationships: what persists over time in the fused output, and what goes together.

Built from typed records (results.py) alone; tracking faces and objects is vision's, and the
fusion plugin hands its tracks in.
"""
