"""Classical baselines with scikit-learn (and scikit-image's HOG): the `sklearn` column of a size sweep."""
