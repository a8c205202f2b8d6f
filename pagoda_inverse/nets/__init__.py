"""Network definitions without the PaGoDA method around them: guided-diffusion's ADM U-Net (the architecture the
importers read, :mod:`.adm`) and the decoder's discriminator (:mod:`.discriminator`).

The toolkit's own U-Net stays in :mod:`pagoda_inverse.core.unet` beside the generator, encoders and guidance map
built on it.
"""
