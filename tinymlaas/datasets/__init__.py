"""The data scientist's area: datasets (samples, labels, versions, splits), training with settings,
model lineage, evaluation (float vs int8, and on devices), and profiles across boards.

Records are in :mod:`.models`; file decoding in :mod:`.decode`; the TensorFlow side (templates,
training, conversion) in :mod:`.trainer`, which runs in a child process; the use cases are in
``tinymlaas.services`` (datasets, training, evaluation, profile).
"""
