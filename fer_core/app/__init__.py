"""Streamlit helpers for ``app.py`` and ``pages/`` only (no other ``fer_core`` module imports this package):
cached models and detector, the sidebar model picker, WebRTC settings, and plotly figures.
"""

