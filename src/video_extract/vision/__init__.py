"""Vision building blocks shared by the vision plugins: frame batches, YOLOX, YuNet, OCR, CLIP."""
