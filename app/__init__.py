"""FaceMe Studio's desktop app (PySide6): thin views over the engine, long work in QThread workers."""
