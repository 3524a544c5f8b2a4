"""Runnable examples: data sets that show the pipeline on other markets than crypto."""
