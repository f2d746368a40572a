"""LTI 1.3 (LTI Advantage): launches from a learning platform into concepts, and grades back."""
