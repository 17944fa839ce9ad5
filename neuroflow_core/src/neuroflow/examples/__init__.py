"""Runnable examples that ship with NeuroFlow (``neuroflow demo`` runs the research agent)."""
