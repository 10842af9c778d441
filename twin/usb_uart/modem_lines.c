/*
 * The modem lines of the twin's USB-UART bridge, for host programs that open its pty.
 *
 * A twin board's UART can appear as a pty (/dev/pts/N) so that programs which only take a
 * device path -- labgrid's exporter starting ser2net with `serialdev,/dev/pts/N` -- reach
 * it like a CP2102 or CH340 on /dev/ttyUSB0. A pty carries bytes and termios, but Linux's
 * pty driver implements no TIOCMGET/TIOCMSET (tty_tiocmset() answers -ENOTTY), so DTR and
 * RTS -- the lines esptool's reset sequence drives through the DevKitC auto-reset circuit --
 * would be lost. Loaded with LD_PRELOAD into such a program, this library answers the four
 * modem-line ioctls for pty slaves itself and tells the twin each new DTR/RTS state as a
 * two-byte datagram ("<dtr><rts>", '0' or '1') on the unix socket
 * $TWIN_MODEM_DIR/pts-<N>. Every other ioctl, and every non-pty descriptor, goes to libc.
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#define MAX_FDS 4096
#define LINES (TIOCM_DTR | TIOCM_RTS)

static int line_state[MAX_FDS];

static int pty_number(int fd)
{
    char path[64];
    if (fd < 0 || fd >= MAX_FDS || ttyname_r(fd, path, sizeof path) != 0)
        return -1;
    if (strncmp(path, "/dev/pts/", 9) != 0)
        return -1;
    return atoi(path + 9);
}

static void tell_twin(int pts, int state)
{
    const char *dir = getenv("TWIN_MODEM_DIR");
    if (dir == NULL)
        return;
    struct sockaddr_un addr = {.sun_family = AF_UNIX};
    snprintf(addr.sun_path, sizeof addr.sun_path, "%s/pts-%d", dir, pts);
    int sock = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    if (sock < 0)
        return;
    char message[2] = {(state & TIOCM_DTR) ? '1' : '0', (state & TIOCM_RTS) ? '1' : '0'};
    sendto(sock, message, sizeof message, 0, (struct sockaddr *)&addr, sizeof addr);
    close(sock);
}

int ioctl(int fd, unsigned long request, ...)
{
    static int (*libc_ioctl)(int, unsigned long, ...);
    va_list args;
    va_start(args, request);
    void *arg = va_arg(args, void *);
    va_end(args);
    if (libc_ioctl == NULL)
        libc_ioctl = (int (*)(int, unsigned long, ...))dlsym(RTLD_NEXT, "ioctl");
    if (request != TIOCMGET && request != TIOCMSET && request != TIOCMBIS && request != TIOCMBIC)
        return libc_ioctl(fd, request, arg);
    int pts = pty_number(fd);
    if (pts < 0)
        return libc_ioctl(fd, request, arg);
    int *bits = arg;
    switch (request) {
    case TIOCMGET:
        /* CTS, DSR and CD asserted: the bridge's inputs are tied active, as on a DevKitC. */
        *bits = line_state[fd] | TIOCM_CTS | TIOCM_DSR | TIOCM_CD;
        return 0;
    case TIOCMSET:
        line_state[fd] = *bits & LINES;
        break;
    case TIOCMBIS:
        line_state[fd] |= *bits & LINES;
        break;
    default: /* TIOCMBIC */
        line_state[fd] &= ~*bits;
        break;
    }
    tell_twin(pts, line_state[fd]);
    return 0;
}
