"""The domestic SMS providers (Alibaba Cloud SMS, Tencent Cloud SMS), the templated-transport
interface they share, and the primary/fallback pair with its health record."""
