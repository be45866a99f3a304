"""The guest stage: what a booted kernel runs (initramfs, busybox, probe modules) and how it
runs (qemu argv, accelerator, boot, console protocol, the running session)."""
