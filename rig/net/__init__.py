"""The rig's network side: rig CA and certificates, the HTTPS OTA server and the fault proxy."""
