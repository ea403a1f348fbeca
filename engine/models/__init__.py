"""The model pack: what FaceMe needs on disk, where it comes from, and how it gets there.

- `layout.py`: the folder layout of the pack and the light per-part check (`verify_pack`).
- `manifest.json` + `manifest.py`: every part's source (hub repo/revision/files or zip URL), sizes,
  SHA-256s where known, licence, required or optional — as data, replaceable by a mirror's manifest.
- `licenses.py`: consent, recorded once per part and licence in `<models>/licenses.json`.
- `fetch.py`: bytes over the network (huggingface_hub for hub files; HTTP Range resume for URLs).
- `integrity.py`: hashes, the per-part installed record, `check_model_file` before loading a model.
- `install.py`: download / import / remove / list, each install staged and renamed into place.

Only `fetch.py` touches the network, and only when a download was asked for.
"""
