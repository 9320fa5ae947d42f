"""Streamlit pieces: sidebar widgets that return plain values, cached loaders, views."""
