"""Seed page: "Session Checkpointing" (the recipe), then the built-in equivalent."""
from repertory import Session


class CheckpointedSession(Session):
    def __init__(self, *args, checkpoint_interval=5, **kwargs):
        super().__init__(*args, **kwargs)
        self.checkpoint_interval = checkpoint_interval
        self.interaction_count = 0
        self.checkpoint_dir = f"checkpoints/{self.session_id}"

    def chat(self, message):
        response = super().chat(message)
        self.interaction_count += 1
        if self.interaction_count % self.checkpoint_interval == 0:
            self.create_checkpoint()
        return response

    def create_checkpoint(self):
        checkpoint_path = f"{self.checkpoint_dir}/checkpoint_{self.interaction_count}.pkl"
        self.save(checkpoint_path)
        print(f"Checkpoint created: {checkpoint_path}")

    def restore_checkpoint(self, checkpoint_number):
        checkpoint_path = f"{self.checkpoint_dir}/checkpoint_{checkpoint_number}.pkl"
        restored = Session.load(checkpoint_path)
        self.__dict__.update(restored.__dict__)
        print(f"Restored to checkpoint {checkpoint_number}")


s = CheckpointedSession(checkpoint_interval=2)
for i in range(4):
    s.chat(f"fact number {i}")
s.restore_checkpoint(2)
assert len(s.get_history()) == 4, s.get_history()

# Built in: automatic checkpoints every N turns, with retention.
b = Session(checkpoint_every=2, keep_checkpoints=3)
for i in range(10):
    b.chat(f"fact number {i}")
cps = b.list_checkpoints()
assert [c["turn"] for c in cps] == [6, 8, 10], cps
b.restore_checkpoint(cps[0]["id"])
assert len(b.get_history()) == 12
