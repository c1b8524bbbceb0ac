"""Backups: the encrypted archive (archive.py), its consistent read of the database
(snapshot.py), the restore (restore.py), the hold a restored copy stays under until an admin
confirms (hold.py), and the daily backup (scheduled.py). Decision 0087."""
