"""Model card templates, one per captioner (see hf_captioners.registry); installed as `hf_captioners.model_cards`."""
