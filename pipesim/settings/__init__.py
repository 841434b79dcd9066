"""What a user gives, read and checked before anything is built: each setting declared once
(`declarations`), the kinds of value they take (`values`, `units`), the files they come from
(`text_input`, `hardware`, `hf_config`), and how they are written back (`written`)."""
