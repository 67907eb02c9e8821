/* A GLX window on X11, linked -lGL -lX11: choose an RGBA visual, create a window and a
   context, clear to a known colour, read a pixel back from the back buffer, swap, and
   print the renderer, the GLX vendor and the pixel. Built for the tests' machine (gcc -m32
   for i386), where no packaged GLX client of that machine is installed. */
#include <GL/gl.h>
#include <GL/glx.h>
#include <X11/Xlib.h>
#include <stdio.h>

int main(void) {
    Display *dpy = XOpenDisplay(NULL);
    if (!dpy) {
        fprintf(stderr, "glx_window: cannot open the display\n");
        return 1;
    }
    int attrs[] = {GLX_RGBA, GLX_DOUBLEBUFFER, GLX_RED_SIZE, 8, GLX_GREEN_SIZE, 8,
                   GLX_BLUE_SIZE, 8, None};
    XVisualInfo *vi = glXChooseVisual(dpy, DefaultScreen(dpy), attrs);
    if (!vi) {
        fprintf(stderr, "glx_window: glXChooseVisual found no RGBA visual\n");
        return 1;
    }
    Window root = RootWindow(dpy, vi->screen);
    XSetWindowAttributes swa = {0};
    swa.colormap = XCreateColormap(dpy, root, vi->visual, AllocNone);
    Window win = XCreateWindow(dpy, root, 0, 0, 64, 64, 0, vi->depth, InputOutput,
                               vi->visual, CWColormap, &swa);
    XMapWindow(dpy, win);
    GLXContext ctx = glXCreateContext(dpy, vi, NULL, True);
    if (!ctx || !glXMakeCurrent(dpy, win, ctx)) {
        fprintf(stderr, "glx_window: no GLX context\n");
        return 1;
    }
    glViewport(0, 0, 64, 64);
    glClearColor(1.0f, 0.5f, 0.0f, 1.0f);
    glClear(GL_COLOR_BUFFER_BIT);
    glFinish();
    unsigned char px[4] = {0};
    glReadBuffer(GL_BACK);
    glReadPixels(32, 32, 1, 1, GL_RGBA, GL_UNSIGNED_BYTE, px);
    glXSwapBuffers(dpy, win);
    printf("renderer: %s\n", (const char *)glGetString(GL_RENDERER));
    printf("glx vendor: %s\n", glXGetClientString(dpy, GLX_VENDOR));
    printf("pixel: %d,%d,%d,%d\n", px[0], px[1], px[2], px[3]);
    glXMakeCurrent(dpy, None, NULL);
    glXDestroyContext(dpy, ctx);
    XDestroyWindow(dpy, win);
    XCloseDisplay(dpy);
    return 0;
}
