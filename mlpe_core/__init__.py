"""MLPE core: every piece of logic the app and the command line share. Never imports streamlit."""

__version__ = "0.1.0"
