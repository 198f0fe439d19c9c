"""The most common passwords (from the published top lists of breached passwords, English and
Chinese keyboards): a new password may not be one of these, whatever its length."""

from __future__ import annotations

_LIST = """
    123456 123456789 12345678 1234567890 12345 1234567 111111 000000 123123 666666 888888
    654321 112233 123321 121212 147258369 987654321 1q2w3e4r 1q2w3e4r5t 1qaz2wsx 1qaz2wsx3edc
    qwerty qwertyuiop qwerty123 qwe123 asdfghjkl asdf1234 zxcvbnm abc123 abc123456 a123456
    a123456789 aa123456 password password1 password123 passw0rd p@ssw0rd p@ssword admin
    admin123 admin1234 administrator root toor letmein welcome welcome1 welcome123 iloveyou
    iloveyou1 monkey dragon master sunshine princess football baseball superman batman
    trustno1 whatever changeme changeme123 default guest test test1234 testtest 11111111
    1111111111 0000000000 00000000 88888888 66666666 12341234 11223344 5201314 52013141314
    woaini woaini1314 woaini520 a5201314 wang123456 zhang123456 li123456 qq123456 aaaaaaaa
    abcdefgh abcd1234 abcdefg123 1234abcd qazwsxedc qazwsx123 zaq12wsx 1234qwer qwer1234
    password12 password1234 secret123 hospital hospital123 hospital1 doctor123 nurse123
    greenchannel greenchannel123 123qweasd 123qwe 123abc 7758521 7758258 147258 159357
    159753 789456123 741852963 1314520 13145201314 321321 520520 123654 123456a 123456aa
"""

COMMON_PASSWORDS = frozenset(_LIST.split())
