"""The service dashboard: the four KPIs, the funnel and the tables behind them.

``kpis`` computes every figure from plain records (testable with a constructed
history); ``data`` loads those records; ``web`` renders the page, CSV and charts;
``publisher`` computes the /metrics figures in one process of the deployment (never a web
process) and publishes a ``snapshot``; ``prom`` serves the latest published one in /metrics.
"""
