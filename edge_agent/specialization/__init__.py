"""Per-camera specialization on the gateway: the live guard that rolls a camera's own student back, and
the loop that collects the teacher's answers, fine-tunes, decides champion/challenger and rolls out."""
