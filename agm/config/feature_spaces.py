"""The feature spaces' names: what a distance in each is called, and how the report describes it (no torch here,
so the report can name its metrics without importing the networks)."""

DISTANCE_NAMES = {"digits": "fd_digits", "inception": "fid"}
DESCRIPTIONS = {
    "digits": "Fréchet distance in the 64-D penultimate features of a digit classifier trained in the "
              "`features` stage (not FID: no Inception network is involved)",
    "inception": "FID: Fréchet distance in clean-fid's Inception-v3 pool features",
}
