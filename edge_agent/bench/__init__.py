"""The bench: the hybrid against the all-frames baseline on real footage, and what each costs."""
