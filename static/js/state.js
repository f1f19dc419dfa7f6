// What the page's modules share: who is signed in, and a generation number that goes up on
// every sign-out, so answers to requests sent before it are ignored.
export const state = {
  user: null,
  generation: 0,
};
