"""Training commands: classifiers, the implicit representation (five tasks), SampleNet, adversarial pairs."""
