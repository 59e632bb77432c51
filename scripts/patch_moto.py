"""Makes moto's SQS Queue.delete_message atomic with add_message.

moto 5.2.5 rebuilds a queue's message list in delete_message outside the lock add_message
takes, so a message sent while another one is being deleted can vanish. Real SQS has no such
race; the worker's deferrals (send a delayed copy, delete the original) hit it under load.
Prints "patched" when it changed the file, "ok" when it was already patched.
"""
import pathlib

import moto.sqs.models as models

MARKER = "# igflow: atomic delete"
OLD = """        # Delete message from queue regardless of pending state
        new_messages = []
        for message in self._messages:
            if message.had_receipt_handle(receipt_handle):
                self.pending_messages.discard(message)
                self.deleted_messages.update(message.all_receipt_handles)  # type: ignore
                continue
            new_messages.append(message)
        self._messages = new_messages
"""
NEW = f"""        # Delete message from queue regardless of pending state
        with self._messages_lock:  {MARKER}
            new_messages = []
            for message in self._messages:
                if message.had_receipt_handle(receipt_handle):
                    self.pending_messages.discard(message)
                    self.deleted_messages.update(message.all_receipt_handles)  # type: ignore
                    continue
                new_messages.append(message)
            self._messages = new_messages
"""

path = pathlib.Path(models.__file__)
source = path.read_text()
if MARKER in source:
    print("ok")
elif OLD in source:
    path.write_text(source.replace(OLD, NEW, 1))
    print("patched")
else:
    raise SystemExit("moto's Queue.delete_message changed; review scripts/patch_moto.py")
