# HAL contracts and implementations. Contracts are plain base classes; nothing is built at import.
