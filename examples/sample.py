"""A small module to try completion on (see `make run`)."""


def is_prime(n: int) -> bool:
    """Return True when n is a prime number."""
    if n < 2:
        return False
    return all(n % d for d in range(2, int(n**0.5) + 1))


def primes_below(limit: int) -> list[int]:
    """All primes smaller than limit, in increasing order."""


def main() -> None:
    print(primes_below(50))
