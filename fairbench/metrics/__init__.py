"""Metrics on generated samples: fairness of the judged group distribution, FID family, image quality."""
