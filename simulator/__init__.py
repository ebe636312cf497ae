"""A simulated retail bank: customers, their events and the ground truth of their propensities.

Uses only the event contract (``schemas``) and the bank model (``domain``); see ``bank.py``."""
