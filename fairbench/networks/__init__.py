"""The task's own small networks, one subsystem: judges (which group an image shows) and domain feature networks
(what the FID family measures in), both trained by fairbench on a task's split, pinned by sha256 or trained on
first use on the user's copy of the data.

`archs` (the modules), `store` (finding pinned and first-use files), `cards` (what ships beside the weights),
`training` (the shared loop), `judge` and `domain` (each kind's recipe, trainer and loader), `kinds` (the
registry the CLI and `prepare` go through), `reproduction` (a retrained network against the pinned one) and
`prepare` (first-use training, before scoring). Nothing is imported here: import the module you need.
"""
