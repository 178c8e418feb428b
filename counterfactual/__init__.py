"""Counterfactual safety pairing: mine risky moments into (negative, verified-safe positive, label) anchor pairs."""
