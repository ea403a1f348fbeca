"""Learning a person from the album: a fitted identity (IDFSR's idea) and a person adapter (PFStorer's).

    split = faces.choose_faces(session, person)              which album faces: fit set + held-out set
    tokens = fitted_identity.fit_identity(models, …)          identity tokens fitted by the denoising loss
    lora = adapter.train_adapter(models, …)                   LoRA on the UNet's attention (peft)
    report = check.held_out_check(pipeline, …)                kept only where it beats the references
    learning.learn_person(catalog, person, pipeline, …)       all of it, stored (engine.learn.store)

The modules are handed their models (a loaded FaceMePipeline's parts); none loads a model itself.
"""
