"""The SMS channel: Twilio-compatible HTTP and SMPP 3.4 providers behind one sender,
GSM-7/UCS-2 encoding and segmentation, delivery receipts."""
