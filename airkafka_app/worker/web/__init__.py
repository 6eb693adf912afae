"""The web side: JSON views on the tables, the cluster views that merge every worker's, and the
dashboard page."""
