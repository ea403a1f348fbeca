"""Restoration: a plan per photo (whose each face is), FaceMe per face, seamless paste-back.

- `engine.restore.options.RestoreOptions`: the one options type (persisted with batch jobs);
- `engine.restore.plan`: plan types and the ad-hoc planner; `engine.restore.album`: the album planner;
- `engine.restore.photo.restore_plan`: a plan in, restored pixels out (`restore_photo`: ad-hoc shortcut);
- `engine.restore.identity`: identity tokens per person, cached in the catalog;
- `engine.restore.identity_check`: does a restored face still look like the person (verdict per face,
  best of N by identity);
- `engine.restore.service.RestorationService`: the loaded pipeline + analyzers, used by CLI, GUI, batch;
- `engine.restore.batch`: resumable album batches over the catalog's job table.

Import from the submodules: this package imports nothing itself, so that code needing only the
options (the scanner's CLI, `faceme batch`'s parser) never loads torch.
"""
