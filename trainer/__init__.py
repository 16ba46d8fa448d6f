"""Synthetic NYC-like trips, the wide & deep trip-duration model, training and SavedModel export."""
