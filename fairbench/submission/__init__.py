"""What gets scored: a generator checkpoint (safe format, registered architectures) or an image set, and the
seeded sampler that turns either into uint8 images with their condition labels."""
