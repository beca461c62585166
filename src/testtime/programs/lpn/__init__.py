"""The Latent Program Network (Macfarlane & Bonnet 2024, "Searching Latent Program
Spaces"): a procedural grid benchmark, the encoder/decoder, test-time latent search
and training with search in the loop. Untrained here (no weights are shipped)."""
