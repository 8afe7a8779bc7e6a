"""scikit-learn estimators over growml's own fitting code: ``GrowingMLPClassifier`` and
``GrowingMLPRegressor``.

They follow scikit-learn's estimator rules (https://scikit-learn.org/stable/developers/
develop.html) the way skorch does for torch modules: the constructor stores settings, ``fit``
builds a ``FitConfig`` from them and calls ``growml.fit`` on the data in memory, so an estimator
trains exactly as ``growml fit`` does. scikit-learn is imported in this package only.

The data handed to ``fit`` is the training data: growml splits it into training and
validation rows (``validation_fraction``, stratified by class where it can be) for early
stopping, growth decisions and the binary threshold, and holds out no test part
(``data.test_size`` is 0); scoring is left to scikit-learn's own tools (``cross_val_score``, a
held-out set).

The safe format for a fitted estimator is its run directory (``save``, ``load``): safetensors
and JSON, which load without executing code. Pickling works, as scikit-learn users expect, but
unpickling runs whatever code the file names; load pickles only from sources you trust.
"""

from growml.sklearn.estimators import GrowingMLPClassifier, GrowingMLPRegressor

__all__ = ["GrowingMLPClassifier", "GrowingMLPRegressor"]
