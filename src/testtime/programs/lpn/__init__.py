"""The Latent Program Network (Macfarlane & Bonnet 2024, "Searching Latent Program
Spaces"): a procedural grid benchmark (:mod:`.grids`), the encoder/decoder
(:mod:`.model`), test-time latent search (:mod:`.search`), training with search in the
loop (:mod:`.train`), the accuracy-vs-compute evaluation (:mod:`.evaluate`), weights and
model card (:mod:`.export`) and the run's report (:mod:`.report`); ``testtime learn lpn``
runs them all. No trained weights are shipped yet (``export.SHIPPED`` is where they go)."""
