"""IPython integration: the %%workflow / %continuum / %%continuum_sql magics and what they display.

``%load_ext continuum_nb`` calls ``magics.load_ipython_extension``; see docs/notebook.md.
"""
