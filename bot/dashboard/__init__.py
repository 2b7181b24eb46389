"""The service dashboard: the four KPIs, the funnel and the tables behind them.

``kpis`` computes every figure from plain records (testable with a constructed
history); ``data`` loads those records; ``web`` renders the page, CSV and charts;
``prom`` exposes the same figures in /metrics, refreshed periodically.
"""
