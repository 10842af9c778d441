"""The ESP32 serial download loader (ROM) and the flasher stub esptool uploads into it.

Speaks esptool's protocol exactly as esptool 5.6 esptool/loader.py speaks it, so the real esptool
(v5, with or without `--no-stub`) flashes, reads and verifies the twin. The stub is
not executed: a MEM_END that asks to run code switches this loader into stub
behaviour (2-byte status, stub-only commands), which is what the real stub does.
Every flash write goes through `NorFlash`, so a power cut tears it.
"""

from __future__ import annotations

import hashlib
import math
import struct
import zlib
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from enum import IntEnum

from twin import slip
from twin.cpu import Activity, Cpu, ResetReason
from twin.flash import SECTOR_SIZE


class Op(IntEnum):
    FLASH_BEGIN = 0x02
    FLASH_DATA = 0x03
    FLASH_END = 0x04
    MEM_BEGIN = 0x05
    MEM_END = 0x06
    MEM_DATA = 0x07
    SYNC = 0x08
    WRITE_REG = 0x09
    READ_REG = 0x0A
    SPI_SET_PARAMS = 0x0B
    SPI_ATTACH = 0x0D
    READ_FLASH_SLOW = 0x0E
    CHANGE_BAUDRATE = 0x0F
    FLASH_DEFL_BEGIN = 0x10
    FLASH_DEFL_DATA = 0x11
    FLASH_DEFL_END = 0x12
    SPI_FLASH_MD5 = 0x13
    ERASE_FLASH = 0xD0
    ERASE_REGION = 0xD1
    READ_FLASH = 0xD2
    RUN_USER_CODE = 0xD3


STUB_ONLY = {Op.ERASE_FLASH, Op.ERASE_REGION, Op.READ_FLASH, Op.RUN_USER_CODE}
ROM_ONLY = {Op.READ_FLASH_SLOW}


class Error(IntEnum):
    INVALID_MESSAGE = 0x05
    FAILED = 0x06
    BAD_CHECKSUM = 0x07
    FLASH_WRITE = 0x08
    FLASH_READ = 0x09
    READ_LENGTH = 0x0A
    DEFLATE = 0x0B


SYNC_PAYLOAD = b"\x07\x07\x12\x20" + b"\x55" * 32
ROM_SYNC_VALUE = 0x20120707
CHIP_MAGIC_REG = 0x40001000
CHIP_MAGIC_ESP32 = 0x00F01D83
UART_CLKDIV_REG = 0x3FF40014
APB_HZ = 40_000_000
RTCCALICFG1 = 0x3FF5F06C
SPI0 = 0x3FF42000
SPI_CMD, SPI_ADDR, SPI_USR, SPI_USR2, SPI_MISO_DLEN, SPI_W0 = (
    SPI0 + 0x00,
    SPI0 + 0x04,
    SPI0 + 0x1C,
    SPI0 + 0x24,
    SPI0 + 0x2C,
    SPI0 + 0x80,
)
SPI_CMD_USR = 1 << 18
SPI_USR_MISO = 1 << 28
# Winbond W25Q-style JEDEC ID; the capacity byte follows the flash size.
JEDEC_MANUFACTURER = 0xEF
JEDEC_TYPE = 0x40
# SFDP header + first parameter header (JEDEC basic table, ID 0x00).
SFDP_TABLE = bytes.fromhex("53464450060101ff" "00060110300000ff" "84000102800000ff")
CHECKSUM_SEED = 0xEF
READ_SLOW_BLOCK = 64


class _Leave(Exception):
    """The loader hands the CPU over to the code in flash ("run user code")."""


class _Fail(Exception):
    def __init__(self, error: Error) -> None:
        super().__init__(error.name)
        self.error = error


@dataclass
class _FlashWrite:
    """One FLASH_BEGIN … FLASH_END (or DEFL) session."""

    offset: int
    size: int
    next_seq: int = 0
    written: int = 0
    erased_to: int = 0
    inflate: zlib._Decompress | None = None
    seen_blocks: set[int] = field(default_factory=set)


def checksum(data: bytes) -> int:
    value = CHECKSUM_SEED
    for byte in data:
        value ^= byte
    return value


def run(cpu: Cpu) -> None:
    """Serve esptool until it asks to run user code (returns) or the chip resets."""
    try:
        RomLoader(cpu).serve()
    except _Leave:
        return


class RomLoader:
    def __init__(self, cpu: Cpu) -> None:
        self.cpu = cpu
        self.flash = cpu.flash
        self.stub = False
        self._decoder = slip.Decoder()
        self._frames: deque[bytes] = deque()
        self._write: _FlashWrite | None = None
        self._registers: dict[int, int] = {
            CHIP_MAGIC_REG: CHIP_MAGIC_ESP32,
            UART_CLKDIV_REG: round(APB_HZ / 115200),
            RTCCALICFG1: 1024 << 7,
        }

    # -- transport -----------------------------------------------------------------

    def _next_frame(self) -> bytes:
        while not self._frames:
            self._frames.extend(self._decoder.feed(self.cpu.uart_read(1 << 16, None)))
        return self._frames.popleft()

    def _send_raw(self, payload: bytes) -> None:
        self.cpu.uart_write(slip.encode(payload))

    def _reply(self, op: int, value: int = 0, data: bytes = b"", error: Error | None = None) -> None:
        status = bytes([1, error.value]) if error is not None else b"\x00\x00"
        if not self.stub:
            status += b"\x00\x00"
        body = data + status
        self._send_raw(struct.pack("<BBHI", 1, op, len(body), value) + body)

    # -- dispatch ------------------------------------------------------------------

    def serve(self) -> None:
        while True:
            frame = self._next_frame()
            if len(frame) < 8 or frame[0] != 0:
                continue  # not a request: noise, or an echo of our own frames
            op, size, chk = struct.unpack_from("<BHI", frame, 1)
            data = frame[8 : 8 + size]
            if len(data) != size:
                continue
            self._dispatch(op, data, chk)

    def _dispatch(self, op: int, data: bytes, chk: int) -> None:
        handler = _HANDLERS.get(op)
        known = handler is not None and not (
            (op in STUB_ONLY and not self.stub) or (op in ROM_ONLY and self.stub)
        )
        if handler is None or not known:
            self._reply(op, error=Error.INVALID_MESSAGE)
            return
        try:
            value, payload = handler(self, data, chk)
        except _Fail as failure:
            self._reply(op, error=failure.error)
            return
        except struct.error:
            self._reply(op, error=Error.INVALID_MESSAGE)
            return
        if value is not None:
            self._reply(op, value, payload)

    # -- handlers: each returns (value, data) to reply with, or (None, b"") if it replied

    def _sync(self, data: bytes, _chk: int) -> tuple[int | None, bytes]:
        if data != SYNC_PAYLOAD:
            raise _Fail(Error.INVALID_MESSAGE)
        value = 0 if self.stub else ROM_SYNC_VALUE
        for _ in range(8):
            self._reply(Op.SYNC, value)
        return None, b""

    def _read_reg(self, data: bytes, _chk: int) -> tuple[int | None, bytes]:
        (address,) = struct.unpack_from("<I", data)
        fused = self.cpu.efuse.register(address)
        return (fused if fused is not None else self._registers.get(address, 0)), b""

    def _write_reg(self, data: bytes, _chk: int) -> tuple[int | None, bytes]:
        for start in range(0, len(data) - 15, 16):
            address, value, mask, _delay = struct.unpack_from("<IIII", data, start)
            old = self._registers.get(address, 0)
            self._registers[address] = (old & ~mask) | (value & mask)
            if address == SPI_CMD and self._registers[address] & SPI_CMD_USR:
                self._spi_user_command()
        return 0, b""

    def _spi_user_command(self) -> None:
        """SPI0's user-command engine, enough for esptool's flash-ID probing."""
        opcode = self._registers.get(SPI_USR2, 0) & 0xFF
        address = self._registers.get(SPI_ADDR, 0) >> 8
        miso_bits = self._registers.get(SPI_MISO_DLEN, 0) + 1
        if not self._registers.get(SPI_USR, 0) & SPI_USR_MISO:
            miso_bits = 0
        capacity = int(math.log2(self.flash.size))
        replies = {
            0x9F: bytes([JEDEC_MANUFACTURER, JEDEC_TYPE, capacity]),
            0x5A: SFDP_TABLE[address : address + 4],
        }
        raw = replies.get(opcode, b"").ljust(4, b"\x00")[:4]
        value = int.from_bytes(raw, "little") & ((1 << miso_bits) - 1)
        self._registers[SPI_W0] = value
        self._registers[SPI_CMD] &= ~SPI_CMD_USR

    def _ok(self, _data: bytes, _chk: int) -> tuple[int | None, bytes]:
        return 0, b""

    def _change_baudrate(self, data: bytes, _chk: int) -> tuple[int | None, bytes]:
        new, _old = struct.unpack_from("<II", data)
        if new <= 0:
            raise _Fail(Error.FAILED)
        self._reply(Op.CHANGE_BAUDRATE)
        self._registers[UART_CLKDIV_REG] = max(1, round(APB_HZ / new))
        return None, b""

    def _mem_data(self, data: bytes, chk: int) -> tuple[int | None, bytes]:
        (length,) = struct.unpack_from("<I", data)
        if checksum(data[16 : 16 + length]) != chk:
            raise _Fail(Error.BAD_CHECKSUM)
        return 0, b""

    def _mem_end(self, data: bytes, _chk: int) -> tuple[int | None, bytes]:
        no_entry, _entry = struct.unpack_from("<II", data)
        self._reply(Op.MEM_END)
        if not no_entry:
            # The uploaded flasher stub starts and greets (after the MEM_END reply).
            self.stub = True
            self._send_raw(b"OHAI")
        return None, b""

    # -- flash writing ---------------------------------------------------------------

    def _flash_begin(self, data: bytes, _chk: int, compressed: bool) -> tuple[int | None, bytes]:
        size, _blocks, _block_size, offset = struct.unpack_from("<IIII", data)
        if offset + size > self.flash.size:
            raise _Fail(Error.FLASH_WRITE)
        session = _FlashWrite(offset, size, erased_to=offset - offset % SECTOR_SIZE)
        if compressed:
            session.inflate = zlib.decompressobj()
        if not self.stub and size:
            # The ROM erases the whole region up front; the stub erases as it writes.
            self.cpu.set_activity(Activity.FLASH_WRITE)
            self._erase_through(session, offset + size)
        self._write = session
        return 0, b""

    def _flash_data(self, data: bytes, chk: int) -> tuple[int | None, bytes]:
        length, seq = struct.unpack_from("<II", data)
        block = data[16 : 16 + length]
        if len(block) != length or checksum(block) != chk:
            raise _Fail(Error.BAD_CHECKSUM)
        session = self._write
        if session is None:
            raise _Fail(Error.FAILED)
        if seq in session.seen_blocks:
            return 0, b""  # a retried block that already landed
        session.seen_blocks.add(seq)
        if session.inflate is not None:
            try:
                block = session.inflate.decompress(block)
            except zlib.error as error:
                raise _Fail(Error.DEFLATE) from error
        block = block[: max(0, session.size - session.written)]
        self.cpu.set_activity(Activity.FLASH_WRITE)
        address = session.offset + session.written
        self._erase_through(session, address + len(block))
        self.flash.program(address, block)
        session.written += len(block)
        return 0, b""

    def _erase_through(self, session: _FlashWrite, end: int) -> None:
        if session.erased_to < end:
            stop = min(self.flash.size, -(-end // SECTOR_SIZE) * SECTOR_SIZE)
            self.flash.erase(session.erased_to, stop - session.erased_to)
            session.erased_to = stop

    def _flash_end(self, data: bytes, op: Op) -> tuple[int | None, bytes]:
        (run_user_code,) = struct.unpack_from("<I", data) if data else (1,)
        self._write = None
        self.cpu.set_activity(Activity.IDLE)
        self._reply(op)
        if self.stub:
            if not run_user_code:
                self.stub = False  # the stub hands back to the ROM loader
            return None, b""
        if run_user_code:
            raise _Leave
        self.cpu.reset(ResetReason.SW_RESET)

    # -- flash reading -----------------------------------------------------------------

    def _md5(self, data: bytes, _chk: int) -> tuple[int | None, bytes]:
        address, size = struct.unpack_from("<II", data)
        if address + size > self.flash.size:
            raise _Fail(Error.FLASH_READ)
        digest = hashlib.md5(self.flash.read(address, size))
        return 0, (digest.digest() if self.stub else digest.hexdigest().encode())

    def _read_flash_slow(self, data: bytes, _chk: int) -> tuple[int | None, bytes]:
        address, length = struct.unpack_from("<II", data)
        if length > READ_SLOW_BLOCK:
            raise _Fail(Error.READ_LENGTH)
        if address + length > self.flash.size:
            raise _Fail(Error.FLASH_READ)
        return 0, self.flash.read(address, length).ljust(READ_SLOW_BLOCK, b"\xff")

    def _read_flash(self, data: bytes, _chk: int) -> tuple[int | None, bytes]:
        address, length, block, in_flight = struct.unpack_from("<IIII", data)
        if address + length > self.flash.size or block == 0:
            raise _Fail(Error.FLASH_READ)
        self._reply(Op.READ_FLASH)
        digest = hashlib.md5()
        sent = acked = 0
        while acked < length:
            while sent < length and sent - acked < block * max(1, in_flight):
                chunk = self.flash.read(address + sent, min(block, length - sent))
                digest.update(chunk)
                self._send_raw(chunk)
                sent += len(chunk)
            frame = self._next_frame()
            if len(frame) == 4:
                acked = struct.unpack("<I", frame)[0]
        self._send_raw(digest.digest())
        return None, b""

    # -- erasing (stub) ------------------------------------------------------------------

    def _erase_flash(self, _data: bytes, _chk: int) -> tuple[int | None, bytes]:
        self.cpu.set_activity(Activity.FLASH_WRITE)
        self.flash.erase_all()
        self.cpu.set_activity(Activity.IDLE)
        return 0, b""

    def _erase_region(self, data: bytes, _chk: int) -> tuple[int | None, bytes]:
        address, size = struct.unpack_from("<II", data)
        if address % SECTOR_SIZE or size % SECTOR_SIZE or address + size > self.flash.size:
            raise _Fail(Error.FAILED)
        self.cpu.set_activity(Activity.FLASH_WRITE)
        self.flash.erase(address, size)
        self.cpu.set_activity(Activity.IDLE)
        return 0, b""

    def _run_user_code(self, _data: bytes, _chk: int) -> tuple[int | None, bytes]:
        raise _Leave


_Handler = Callable[[RomLoader, bytes, int], tuple[int | None, bytes]]

_HANDLERS: dict[int, _Handler] = {
    Op.SYNC: RomLoader._sync,
    Op.READ_REG: RomLoader._read_reg,
    Op.WRITE_REG: RomLoader._write_reg,
    Op.SPI_SET_PARAMS: RomLoader._ok,
    Op.SPI_ATTACH: RomLoader._ok,
    Op.MEM_BEGIN: RomLoader._ok,
    Op.MEM_DATA: RomLoader._mem_data,
    Op.MEM_END: RomLoader._mem_end,
    Op.CHANGE_BAUDRATE: RomLoader._change_baudrate,
    Op.FLASH_BEGIN: lambda self, data, chk: self._flash_begin(data, chk, compressed=False),
    Op.FLASH_DEFL_BEGIN: lambda self, data, chk: self._flash_begin(data, chk, compressed=True),
    Op.FLASH_DATA: RomLoader._flash_data,
    Op.FLASH_DEFL_DATA: RomLoader._flash_data,
    Op.FLASH_END: lambda self, data, chk: self._flash_end(data, Op.FLASH_END),
    Op.FLASH_DEFL_END: lambda self, data, chk: self._flash_end(data, Op.FLASH_DEFL_END),
    Op.SPI_FLASH_MD5: RomLoader._md5,
    Op.READ_FLASH_SLOW: RomLoader._read_flash_slow,
    Op.ERASE_FLASH: RomLoader._erase_flash,
    Op.ERASE_REGION: RomLoader._erase_region,
    Op.READ_FLASH: RomLoader._read_flash,
    Op.RUN_USER_CODE: RomLoader._run_user_code,
}
