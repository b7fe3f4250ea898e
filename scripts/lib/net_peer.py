#!/usr/bin/env python3
"""The host's side of the test kernel's net-echo scenario, on a tap in the caller's network
namespace: raw Ethernet frames through an AF_PACKET socket, so every byte is the test's.

  net_peer.py TAP GUEST_IP [--host-ip IP] [--burst] [--hostile] [--stop]

  --burst    ICMP echo requests of every frame size from 42 bytes to the MTU's (payloads of 0 to
             MTU - 28 bytes, each a different pattern), a window of them in flight at a time;
             each reply must carry the same payload back
  --hostile  frames no sane peer sends (runts, garbage EtherTypes, a bad IP checksum, a lying IP
             length): the guest must drop them and keep answering
  --stop     the frame that ends the scenario (EtherType 0x88b5, "ebb-stop")

Last line: net-peer: result arp=0|1 sent=N answered=N mismatched=N lost=N rtt-us=N
"""
import argparse
import os
import select
import socket
import struct
import sys
import time

ETH_P_ALL = 0x0003
ETH_P_ARP = 0x0806
ETH_P_IP = 0x0800
ETH_P_EBB = 0x88B5


def checksum(data: bytes) -> int:
    if len(data) % 2:
        data += b"\0"
    total = sum(struct.unpack(f"!{len(data) // 2}H", data))
    while total >> 16:
        total = (total & 0xFFFF) + (total >> 16)
    return ~total & 0xFFFF


def mac_of(interface: str) -> bytes:
    with open(f"/sys/class/net/{interface}/address") as f:
        return bytes.fromhex(f.read().strip().replace(":", ""))


def mtu_of(interface: str) -> int:
    with open(f"/sys/class/net/{interface}/mtu") as f:
        return int(f.read())


class Peer:
    def __init__(self, interface: str, host_ip: str, guest_ip: str):
        self.sock = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(ETH_P_ALL))
        self.sock.bind((interface, 0))
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 << 20)
        self.mac = mac_of(interface)
        self.mtu = mtu_of(interface)
        self.host_ip = socket.inet_aton(host_ip)
        self.guest_ip = socket.inet_aton(guest_ip)
        self.guest_mac = None

    def send(self, frame: bytes):
        self.sock.send(frame)

    def frames(self, timeout_s: float):
        """Frames from the guest until `timeout_s` passes with none."""
        while True:
            ready, _, _ = select.select([self.sock], [], [], timeout_s)
            if not ready:
                return
            frame, address = self.sock.recvfrom(65536)
            if address[2] == socket.PACKET_OUTGOING:
                continue
            yield frame

    def arp(self, tries: int = 10) -> bool:
        request = (b"\xff" * 6 + self.mac + struct.pack("!H", ETH_P_ARP)
                   + struct.pack("!HHBBH", 1, ETH_P_IP, 6, 4, 1) + self.mac + self.host_ip + b"\0" * 6 + self.guest_ip)
        for _ in range(tries):
            self.send(request)
            for frame in self.frames(2.0):
                if (len(frame) >= 42 and frame[12:14] == b"\x08\x06" and frame[20:22] == b"\x00\x02"
                        and frame[28:32] == self.guest_ip and frame[32:38] == self.mac):
                    self.guest_mac = frame[22:28]
                    return True
        return False

    def echo_request(self, ident: int, sequence: int, payload: bytes) -> bytes:
        icmp = struct.pack("!BBHHH", 8, 0, 0, ident, sequence) + payload
        icmp = icmp[:2] + struct.pack("!H", checksum(icmp)) + icmp[4:]
        ip = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(icmp), sequence, 0, 64, 1, 0, self.host_ip, self.guest_ip)
        ip = ip[:10] + struct.pack("!H", checksum(ip)) + ip[12:]
        return self.guest_mac + self.mac + struct.pack("!H", ETH_P_IP) + ip + icmp

    def burst(self, ident: int, window: int = 8):
        """Echo requests of every payload size 0..MTU-28: (sent, answered, mismatched, median RTT us)."""
        sizes = list(range(0, self.mtu - 28 + 1))
        expected = {}
        sent_at = {}
        answered = mismatched = 0
        rtts = []
        position = 0
        while position < len(sizes) or expected:
            while position < len(sizes) and len(expected) < window:
                size = sizes[position]
                payload = bytes((size + i) & 0xFF for i in range(size))
                expected[position] = payload
                sent_at[position] = time.monotonic()
                self.send(self.echo_request(ident, position, payload))
                position += 1
            got = False
            for frame in self.frames(3.0):
                got = True
                reply = parse_echo_reply(frame, self.guest_ip, self.host_ip, ident)
                if reply is None:
                    continue
                sequence, payload = reply
                if sequence not in expected:
                    continue
                rtts.append((time.monotonic() - sent_at[sequence]) * 1e6)
                if payload == expected.pop(sequence):
                    answered += 1
                else:
                    mismatched += 1
                break
            if not got:
                # Nothing for 3 s: what is in flight is lost.
                expected.clear()
        rtts.sort()
        return len(sizes), answered, mismatched, rtts[len(rtts) // 2] if rtts else None

    def hostile(self):
        eth = self.guest_mac + self.mac
        good = self.echo_request(0x4242, 1, b"bad checksum")
        lying = bytearray(self.echo_request(0x4242, 2, b"lying length"))
        lying[16:18] = struct.pack("!H", 1400)                          # IP total length past the frame
        for frame in (eth + struct.pack("!H", ETH_P_IP),                # an Ethernet header and nothing else
                      eth + struct.pack("!H", 0x9999) + os.urandom(200),  # an EtherType nobody speaks
                      good[:24] + bytes([good[24] ^ 0xFF]) + good[25:],   # IP checksum broken
                      bytes(lying),
                      eth + struct.pack("!H", ETH_P_ARP) + b"\x00" * 4,  # a truncated ARP
                      eth + struct.pack("!H", ETH_P_IP) + b"\x00" + os.urandom(self.mtu - 1)):  # noise (IP version 0)
            self.send(frame)


def parse_echo_reply(frame: bytes, source: bytes, destination: bytes, ident: int):
    if len(frame) < 42 or frame[12:14] != b"\x08\x00":
        return None
    ihl = (frame[14] & 15) * 4
    total = struct.unpack("!H", frame[16:18])[0]
    if frame[23] != 1 or frame[26:30] != source or frame[30:34] != destination or 14 + total > len(frame):
        return None
    if checksum(frame[14:14 + ihl]) != 0:
        return None
    icmp = frame[14 + ihl:14 + total]
    if len(icmp) < 8 or icmp[0] != 0 or checksum(icmp) != 0:
        return None
    _, _, _, reply_ident, sequence = struct.unpack("!BBHHH", icmp[:8])
    if reply_ident != ident:
        return None
    return sequence, icmp[8:]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("tap")
    parser.add_argument("guest_ip")
    parser.add_argument("--host-ip", default="10.0.2.2")
    parser.add_argument("--burst", action="store_true")
    parser.add_argument("--hostile", action="store_true")
    parser.add_argument("--stop", action="store_true")
    args = parser.parse_args()
    peer = Peer(args.tap, args.host_ip, args.guest_ip)
    arp = peer.arp()
    print(f"net-peer: arp {'answered, guest ' + peer.guest_mac.hex(':') if arp else 'unanswered'}", flush=True)
    sent = answered = mismatched = 0
    rtt = None
    if arp and args.hostile:
        peer.hostile()
        print("net-peer: hostile frames sent", flush=True)
    if arp and args.burst:
        sent, answered, mismatched, rtt = peer.burst(os.getpid() & 0xFFFF)
    if args.stop:
        peer.send((peer.guest_mac or b"\xff" * 6) + peer.mac + struct.pack("!H", ETH_P_EBB) + b"ebb-stop" + b"\0" * 38)
    lost = sent - answered - mismatched
    print(f"net-peer: result arp={int(arp)} sent={sent} answered={answered} mismatched={mismatched} lost={lost} "
          f"rtt-us={'none' if rtt is None else round(rtt)}", flush=True)
    return 0 if arp and lost == 0 and mismatched == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
