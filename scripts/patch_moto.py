"""Makes moto's SQS Queue.delete_message atomic with add_message.

moto 5.2.5 rebuilds a queue's message list in delete_message outside the lock add_message
takes, so a message sent while another one is being deleted can vanish. Real SQS has no such
race; the worker's deferrals (send a delayed copy, delete the original) hit it under load.
Also makes SendMessageBatch refuse an entry whose body holds characters SQS does not accept
(outside XML 1.0's set: most C0 controls, U+FFFE, U+FFFF) the way SQS does: that entry alone,
as a sender fault `InvalidMessageContents`, the others sent. moto 5.2.5 takes any body.
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

CHARS_MARKER = "# igflow: SQS character set"
CHARS_OLD = """        for entry in entries.values():
            try:
                # Loop through looking for messages
                message = self.send_message(
"""
CHARS_NEW = f"""        for entry in entries.values():
            if re.search(  {CHARS_MARKER}
                "[^\\x09\\x0a\\x0d\\x20-\\ud7ff\\ue000-\\ufffd\\U00010000-\\U0010ffff]",
                entry["MessageBody"],
            ):
                failedInvalidDelay.append(
                    {{
                        "Id": entry["Id"],
                        "SenderFault": True,
                        "Code": "InvalidMessageContents",
                        "Message": "Message contains invalid characters",
                    }}
                )
                continue
            try:
                # Loop through looking for messages
                message = self.send_message(
"""

PATCHES = [
    (MARKER, OLD, NEW, "Queue.delete_message"),
    (CHARS_MARKER, CHARS_OLD, CHARS_NEW, "SQSBackend.send_message_batch"),
]

path = pathlib.Path(models.__file__)
source = path.read_text()
changed = False
for marker, old, new, what in PATCHES:
    if marker in source:
        continue
    if old not in source:
        raise SystemExit(f"moto's {what} changed; review scripts/patch_moto.py")
    source = source.replace(old, new, 1)
    changed = True
if changed:
    path.write_text(source)
print("patched" if changed else "ok")
