"""Scrape-time observation: the state gauges refreshed when /metrics is read."""
